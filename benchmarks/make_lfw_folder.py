"""Assemble a folder-per-class data set from LFW: the View 1 training people with >= N images.

    python benchmarks/make_lfw_folder.py ../shared/data/lfw/lfw-a.zip ../shared/data/lfw/peopleDevTrain.txt out/ --min_images 10

Only people of the View 1 training split are used, so the held-back View 1 test people stay
unseen. Each person becomes a class folder of their JPEG files.
"""

from __future__ import annotations

import argparse
import zipfile
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zip", help="an LFW archive with <Person>/<Person>_NNNN.jpg members")
    parser.add_argument("people", help="peopleDevTrain.txt (first line: count; then name<TAB>n)")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--min_images", type=int, default=10)
    options = parser.parse_args()
    allowed = {line.split("\t")[0] for line in Path(options.people).read_text().splitlines()[1:] if line.strip()}
    with zipfile.ZipFile(options.zip) as archive:
        by_person: dict[str, list[str]] = defaultdict(list)
        for name in archive.namelist():
            if name.endswith(".jpg"):
                by_person[Path(name).parent.name].append(name)
        kept = {p: files for p, files in by_person.items() if p in allowed and len(files) >= options.min_images}
        for person, files in kept.items():
            folder = Path(options.out) / person
            folder.mkdir(parents=True, exist_ok=True)
            for name in files:
                (folder / Path(name).name).write_bytes(archive.read(name))
    print(f"{len(kept)} people, {sum(len(f) for f in kept.values())} images in {options.out}")


if __name__ == "__main__":
    main()
