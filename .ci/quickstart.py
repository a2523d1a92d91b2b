"""Print the fenced bash commands of README.md's "Quick start" section (for .ci/run)."""

import re
import sys
from pathlib import Path

text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
section = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M)
if not section:
    sys.exit("README.md has no '## Quick start' section")
blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)```", section.group(1), re.S)]
sep = "\0" if "--null" in sys.argv else "\n"
sys.stdout.write(sep.join(blocks) + sep)
