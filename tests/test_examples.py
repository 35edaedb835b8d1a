"""The examples run as documented, and the docs cite only what is in the repository."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_own_model_example_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "own_model.py"), "--energies", "10",
                           "--image_size", "32", "--out", str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "coverage: 100.00%" in proc.stdout and "closed form" in proc.stdout
    assert (tmp_path / "allocation.json").is_file()


def test_docs_link_only_to_files_in_the_repository():
    texts = {p: p.read_text() for p in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("noisesim/**/*.py"),
                                        *ROOT.glob("tests/*.py"), *ROOT.glob("examples/*.py")]}
    outside = ("DESIGN" + ".md", ".." + "/shared")  # spelled apart so that this file does not cite them
    assert not [p for p, t in texts.items() if any(o in t for o in outside)]
    for page in [ROOT / "README.md", *ROOT.glob("docs/*.md")]:
        for link in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not link.startswith("http"):
                assert (page.parent / link).exists(), f"{page.name} links to missing {link}"
