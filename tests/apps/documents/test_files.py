"""What an uploaded file is: names made safe, types by extension and content, text extracted."""

import io

import pytest

from apps.documents import files


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\me\\lease.pdf", "lease.pdf"),
        ("../../x.txt", "x.txt"),
        ("\x00\x1fbad\x7f.txt", "bad.txt"),
        (".hidden.txt", "hidden.txt"),
        ("", "upload"),
        (None, "upload"),
        ("a" * 300 + ".pdf", "a" * 251 + ".pdf"),
    ],
)
def test_display_name_strips_paths_and_control_characters(raw: str | None, safe: str) -> None:
    assert files.display_name(raw) == safe


def test_text_is_extracted_from_utf8_with_bom_and_cut_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    sniffed = files.sniff(io.BytesIO("\ufeffZoë's lease".encode()), "a.TXT")
    assert sniffed.kind == files.TXT and sniffed.text == "Zoë's lease"
    monkeypatch.setattr(files, "MAX_TEXT_CHARS", 10)
    assert files.sniff(io.BytesIO(b"x" * 100), "big.csv").text == "x" * 10


@pytest.mark.parametrize("content", [b"abc\x00def", b"\x1b[31mred", b"\x81\x8d"])
def test_binary_content_is_not_text(content: bytes) -> None:
    with pytest.raises(files.FileRejected):
        files.sniff(io.BytesIO(content), "notes.txt")


def test_the_file_is_left_at_its_start() -> None:
    handle = io.BytesIO(b"%PDF-1.7 rest")
    assert files.sniff(handle, "x.pdf").text is None
    assert handle.tell() == 0
