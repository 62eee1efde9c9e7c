"""Write docs/reference.md, the table of every configuration key, from the code.

    python docs/gen_reference.py            # rewrite the page
    python docs/gen_reference.py --check    # exit 1 when the committed page is stale

tests/test_docs_site.py fails when the committed page differs from what this writes.
"""
import sys
from pathlib import Path

import genloop
from genloop.reference import reference_page

PAGE = Path(__file__).resolve().parent / "reference.md"

if __name__ == "__main__":
    genloop.load_builtins()
    text = reference_page()
    if "--check" in sys.argv[1:]:
        current = PAGE.read_text() if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE} is stale: run python docs/gen_reference.py", file=sys.stderr)
            sys.exit(1)
    else:
        PAGE.write_text(text)
        print(f"wrote {PAGE}")
