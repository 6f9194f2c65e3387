"""A Stack Exchange post's HTML as text, structure kept: paragraphs and headings as lines, `<pre>` code
blocks verbatim (indentation and blank lines inside them included), list items as bullets or numbers,
nested lists indented, links and emphasis as their text, entities decoded. resiliparse does the
conversion (whole post, no boilerplate removal: a post is all content)."""
from __future__ import annotations


def html_to_text(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    if not html.strip():
        return ""
    text = extract_plain_text(html, preserve_formatting=True, main_content=False, list_bullets=True,
                              alt_texts=False, links=False, form_fields=False, noscript=False)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
