"""Validation of an SPDX document: spdx-tools' full validation, in linear time."""

from __future__ import annotations

from spdx_tools.spdx.model.document import Document
from spdx_tools.spdx.model.relationship import RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.model.spdx_none import SpdxNone
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.validation.spdx_id_validators import get_list_of_all_spdx_ids, validate_spdx_id
from spdx_tools.spdx.validation.validation_message import SpdxElementType, ValidationContext, ValidationMessage


def validation_messages(document: Document) -> list[ValidationMessage]:
    """What spdx-tools' full validation (``validate_full_spdx_document``) says about
    ``document``, in linear time.

    spdx-tools checks every relationship by listing every element of the document again
    (quadratic: half a minute for a /usr scan), so its validator runs here on the document
    with only its DESCRIBES relationships, and the checks it would make on the other
    relationships are made with sets: both ids well formed (spdx-tools'
    ``validate_spdx_id``), both present, and no package with files-analyzed false that
    contains a file (SPDX 2.3 section 7.8)."""
    rels = document.relationships
    describes = [r for r in rels if r.relationship_type in (RelationshipType.DESCRIBES, RelationshipType.DESCRIBED_BY)]
    head = Document(creation_info=document.creation_info, packages=document.packages, files=document.files,
                    snippets=document.snippets, annotations=document.annotations, relationships=describes,
                    extracted_licensing_info=document.extracted_licensing_info)
    messages = validate_full_spdx_document(head)

    present = set(get_list_of_all_spdx_ids(document))
    file_ids = {f.spdx_id for f in document.files}
    unanalysed = {p.spdx_id for p in document.packages if not p.files_analyzed}
    for rel in rels:
        context = ValidationContext(element_type=SpdxElementType.RELATIONSHIP, full_element=rel)
        related = rel.related_spdx_element_id
        ends = [rel.spdx_element_id] + ([] if isinstance(related, (SpdxNone, SpdxNoAssertion)) else [related])
        for spdx_id in ends:
            found = validate_spdx_id(spdx_id, document)
            if ":" not in spdx_id and spdx_id not in present:
                found.append(f'did not find the referenced spdx_id "{spdx_id}" in the SPDX document')
            messages.extend(ValidationMessage(m, context) for m in found)
        package_id: object  # an id, or NONE / NOASSERTION on the related side
        file_id: object
        if rel.relationship_type == RelationshipType.CONTAINS:
            package_id, file_id = rel.spdx_element_id, rel.related_spdx_element_id
        elif rel.relationship_type == RelationshipType.CONTAINED_BY:
            package_id, file_id = rel.related_spdx_element_id, rel.spdx_element_id
        else:
            continue
        if package_id in unanalysed and file_id in file_ids:
            messages.append(ValidationMessage(
                f"package must contain no elements if files_analyzed is False, but found {rel}",
                ValidationContext(spdx_id=str(package_id), parent_id=document.creation_info.spdx_id,
                                  element_type=SpdxElementType.PACKAGE)))
    return messages


def validate_document(document: Document) -> None:
    """Raise ValueError listing the first messages when the document is not valid SPDX."""
    messages = validation_messages(document)
    if messages:
        shown = "; ".join(m.validation_message for m in messages[:5])
        more = f" (and {len(messages) - 5} more)" if len(messages) > 5 else ""
        raise ValueError(f"the SPDX document is not valid: {shown}{more}")
