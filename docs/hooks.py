"""MkDocs hook: the pages link the repository's ``examples/`` (figures, tables, scripts) as ``../examples/...``,
which works when browsing the repository; this adds those files to the site under ``examples/`` so the same
links resolve there and ``mkdocs build --strict`` can check them."""
from pathlib import Path

from mkdocs.structure.files import File, InclusionLevel

SKIP = {"__pycache__", "build"}


def on_files(files, config):
    root = Path(config["docs_dir"]).parent
    for path in sorted((root / "examples").rglob("*")):
        parts = set(path.relative_to(root).parts)
        if path.is_file() and not parts & SKIP and not any(p.endswith(".egg-info") for p in parts):
            uri = path.relative_to(root).as_posix()
            files.append(File(f"../{uri}", config["docs_dir"], config["site_dir"], config["use_directory_urls"],
                              dest_uri=uri, inclusion=InclusionLevel.NOT_IN_NAV))
    return files
