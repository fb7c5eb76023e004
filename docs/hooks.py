"""MkDocs hook: serve the records and figures of benchmarks/results/ under records/.

The docs link to a record as ``records/<name>.json`` and show a figure as
``records/<name>.png``; the files stay where the benchmarks write them.
"""

from pathlib import Path

from mkdocs.structure.files import File

SERVED = {".json", ".png", ".csv"}


def on_files(files, config):
    results = Path(config.config_file_path).parent / "benchmarks" / "results"
    for path in sorted(results.rglob("*")):
        if path.is_file() and path.suffix in SERVED:
            uri = "records/" + path.relative_to(results).as_posix()
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
