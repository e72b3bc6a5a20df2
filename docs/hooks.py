"""MkDocs hook: the case-file reference is generated from the records (mapg_verify.casefile.reference)."""

from mapg_verify.casefile.reference import case_file_reference

PLACEHOLDER = "<!-- case-file-reference -->"


def on_page_markdown(markdown: str, page, **_) -> str:
    return markdown.replace(PLACEHOLDER, case_file_reference())
