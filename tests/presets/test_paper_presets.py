"""docs/PROTOCOLS.md against the preset files: every value the page gives a configuration key is the
value the paper presets hold, so the page and the presets cannot drift apart."""
import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from deepclust.engine.config import list_presets, preset_config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOLS.md"
METHODS = ("htcn", "dchl", "hadis", "concurl", "hardreg")
HEADER = ["setting", "key", "presets", "deepclust", "original", "where", "verdict"]
#: Settings every method's table must give for every one of its paper presets.
REQUIRED_KEYS = ("backbone.name", "augmentation.image_size", "training.batch_size", "optimizer.name",
                 "optimizer.lr", "schedule.name", "training.epochs", "data.split", "training.amp")
KEY = re.compile(r"^`([a-z_0-9]+(?:\.[a-z_0-9]+)+)`$")
CODE = re.compile(r"^`([^`]*)`$")
CITATION = re.compile(r"^[\w-]+/[\w.-]+@[0-9a-f]{7} \S")


def sections() -> dict[str, list[str]]:
    """The lines of each method's section (``## Name (`method`)``)."""
    found, current = {}, None
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## .*\(`([a-z]+)`\)\s*$", line)
        if heading:
            current = heading.group(1)
            found[current] = []
        elif line.startswith("## "):
            current = None
        elif current is not None:
            found[current].append(line)
    return found


def rows(lines: list[str]) -> list[dict[str, str]]:
    table = [line for line in lines if line.startswith("|")]
    assert table, "a method's section holds no table"
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == HEADER, f"table header {header}"
    out = []
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == len(HEADER), f"a row must have {len(HEADER)} cells: {line}"
        out.append(dict(zip(HEADER, cells)))
    return out


@lru_cache(maxsize=None)
def paper_presets(method: str) -> list[str]:
    return [name for name in list_presets(method) if name.startswith("paper-")]


@lru_cache(maxsize=None)
def preset(method: str, name: str) -> dict:
    return preset_config(method, name)


def presets_of(row: dict, method: str) -> list[str]:
    if row["presets"] == "all":
        return paper_presets(method)
    names = [name.strip() for name in row["presets"].split(",")]
    assert all(CODE.match(name) for name in names), f"presets must be `all` or `name`, ...: {row}"
    return [CODE.match(name).group(1) for name in names]


def lookup(config: dict, dotted: str):
    value = config
    for part in dotted.split("."):
        assert isinstance(value, dict) and part in value, f"the presets have no key {dotted}"
        value = value[part]
    return value


SECTIONS = sections()


def test_every_method_has_a_section():
    assert set(SECTIONS) == set(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_the_section_names_exactly_the_paper_presets(method):
    lines = SECTIONS[method]
    start = next(i for i, line in enumerate(lines) if line.startswith("Paper presets:"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    listed = " ".join(lines[start:end])   # the paragraph
    assert sorted(re.findall(r"`(paper-[a-z0-9-]+)`", listed)) == paper_presets(method)


@pytest.mark.parametrize("method", METHODS)
def test_table_values_are_the_presets_values(method):
    checked = 0
    for row in rows(SECTIONS[method]):
        assert row["original"], f"a row needs the reference's value: {row}"
        assert CITATION.match(row["where"]), f"where must start with owner/repository@commit: {row}"
        assert row["verdict"].startswith(("same", "differs")), f"verdict must say same or differs: {row}"
        key = KEY.match(row["key"])
        if row["key"] == "—":
            continue
        assert key, f"key must be `section.key` or —: {row}"
        value = CODE.match(row["deepclust"])
        assert value, f"a row with a key gives the preset's value in backticks: {row}"
        expected = yaml.safe_load(value.group(1))
        for name in presets_of(row, method):
            assert name in paper_presets(method), f"{name} is not a paper preset of {method}"
            actual = lookup(preset(method, name), key.group(1))
            assert actual == expected, f"{method} {name}: {key.group(1)} is {actual!r}, PROTOCOLS.md says {expected!r}"
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("method", METHODS)
def test_the_main_settings_are_given_for_every_paper_preset(method):
    table = rows(SECTIONS[method])
    for key in REQUIRED_KEYS:
        covered = [preset for row in table if row["key"] == f"`{key}`" for preset in presets_of(row, method)]
        assert sorted(covered) == paper_presets(method), f"{method}: {key} must be given once for every paper preset"
