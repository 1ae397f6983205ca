"""CSV and JSON files of device tags for `telemetry devices load`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.device_files import (
    DeviceRow,
    UnusableFile,
    parse_csv,
    parse_json,
    read_device_file,
)


def problems_at(parsed_bad: list, where: str) -> str:
    return " | ".join(p for row in parsed_bad if row.where == where for p in row.problems)


def test_csv_rows_become_devices_and_empty_cells_mean_no_tag() -> None:
    parsed = parse_csv(
        "device_id,site,rack\nd1,berlin,r1\nd2,paris,\n\n\"d,3\",\"a \"\"b\"\"\",r9\n")
    assert parsed.bad == []
    assert parsed.good == [
        DeviceRow("line 2", "d1", {"site": "berlin", "rack": "r1"}),
        DeviceRow("line 3", "d2", {"site": "paris"}),
        DeviceRow("line 5", "d,3", {"site": 'a "b"', "rack": "r9"}),
    ]


def test_csv_bad_rows_are_reported_by_line_and_good_rows_kept() -> None:
    text = ("site,device_id,rack\n"
            "berlin,d1,r1\n"
            "paris,,r2\n"          # line 3: empty device id
            "rome,d/3,r3\n"        # line 4: '/' in device id
            "oslo,d4\n"            # line 5: too few cells
            "lima,d5,r5,extra\n"   # line 6: too many cells
            "kiev,d1,r6\n"         # line 7: duplicate device
            "\" x\",d8,\"two\nlines\"\n"  # line 8-9: whitespace and newline in tags
            "bonn,d10,r10\n")
    parsed = parse_csv(text)
    assert [row.device_id for row in parsed.good] == ["d1", "d10"]
    assert [row.where for row in parsed.bad] == ["line 3", "line 4", "line 5", "line 6",
                                                 "line 7", "line 9"]
    assert "device id is empty" in problems_at(parsed.bad, "line 3")
    assert "'/'" in problems_at(parsed.bad, "line 4")
    assert "2 cells but the header has 3" in problems_at(parsed.bad, "line 5")
    assert "4 cells" in problems_at(parsed.bad, "line 6")
    assert "already appears at line 2" in problems_at(parsed.bad, "line 7")
    both = problems_at(parsed.bad, "line 9")
    assert "whitespace" in both and "U+000A" in both


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("site,rack\nberlin,r1\n", "no device_id column"),
        ("device_id,site,site\nd1,a,b\n", "appears twice"),
        ("device_id,,rack\nd1,a,b\n", "column 2 has no name"),
        ('device_id,site\nd1,"unterminated\n', "not valid CSV"),
    ],
)
def test_unusable_csv_files_say_why(text: str, words: str) -> None:
    with pytest.raises(UnusableFile, match=words):
        parse_csv(text)


def test_json_object_of_device_to_tags() -> None:
    parsed = parse_json('{"d1": {"site": "berlin"}, "d2": {}, "": {"a": "b"}, "d4": ["x"],'
                        ' "d5": {"floor": 3}}')
    assert parsed.good == [DeviceRow('device \'d1\'', "d1", {"site": "berlin"}),
                           DeviceRow("device 'd2'", "d2", {})]
    assert "device id is empty" in problems_at(parsed.bad, "device ''")
    assert "got an array" in problems_at(parsed.bad, "device 'd4'")
    assert "is a number" in problems_at(parsed.bad, "device 'd5'")


def test_json_list_with_flat_tags_or_a_tags_object() -> None:
    parsed = parse_json('[{"device_id": "d1", "site": "berlin"},'
                        ' {"device_id": "d2", "tags": {"site": "paris"}},'
                        ' {"site": "rome"}, 7, {"device_id": 12, "a": "b"},'
                        ' {"device_id": "d1", "site": "oslo"}]')
    assert parsed.good == [DeviceRow("item 1", "d1", {"site": "berlin"}),
                           DeviceRow("item 2", "d2", {"site": "paris"})]
    assert 'no "device_id"' in problems_at(parsed.bad, "item 3")
    assert "is a number" in problems_at(parsed.bad, "item 4")
    assert "device_id is a number" in problems_at(parsed.bad, "item 5")
    assert "already appears at item 1" in problems_at(parsed.bad, "item 6")


@pytest.mark.parametrize(
    ("text", "words"),
    [("{", "not JSON"), ("42", "a number"), ('{"d1": {}, "d1": {}}', "duplicate key"),
     ("[" * 50_000, "nested")],
)
def test_unusable_json_files_say_why(text: str, words: str) -> None:
    with pytest.raises(UnusableFile, match=words):
        parse_json(text)


def test_files_are_read_by_extension_with_a_bom_allowed(tmp_path: Path) -> None:
    csv_file = tmp_path / "devices.csv"
    csv_file.write_bytes(b"\xef\xbb\xbfdevice_id,site\r\nd1,berlin\r\n")
    assert read_device_file(csv_file).good == [DeviceRow("line 2", "d1", {"site": "berlin"})]
    json_file = tmp_path / "devices.JSON"
    json_file.write_text('{"d1": {"site": "berlin"}}')
    assert read_device_file(json_file).good[0].tags == {"site": "berlin"}
    other = tmp_path / "devices.txt"
    other.write_text('{"d1": {}}')
    assert read_device_file(other, "json").good[0].device_id == "d1"


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [("devices.txt", b"x", "cannot tell the format"),
     ("devices.csv", b"device_id\n\xff\xfe\n", "not UTF-8"),
     ("missing.csv", None, "No such file")],
)
def test_unreadable_files_say_why(tmp_path: Path, name: str, content: bytes | None,
                                  words: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UnusableFile, match=words):
        read_device_file(path)
