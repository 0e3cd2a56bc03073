"""CSV files as Europe writes them: cp1252, semicolons, decimal commas; read with and without the options,
and every error names the file, the line and what to pass."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import explain_distill as ed

ROWS = [("Zoë", "1,5", "2.300,25", "12", "ja"), ("Renée", "2,25", "1.100,5", "7", "nein"),
        ("Jürgen", "0,75", "980,1", "3", "ja"), ("Åsa", "3,5", "2.050,75", "15", "nein")]


def _european(tmp_path, n=80, name="kunden.csv"):
    """A semicolon-separated, decimal-comma, cp1252-encoded file with accented text levels."""
    lines = ["name;rate;umsatz;jahre;kündigt"]
    for i in range(n):
        who, rate, amount, years, label = ROWS[i % 4]
        lines.append(f"{who};{rate};{amount};{int(years) + i % 5};{label}")
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def test_a_european_file_is_read_by_sniffing(tmp_path, caplog):
    path = _european(tmp_path)
    with caplog.at_level(logging.INFO, logger="explain_distill.data"):
        data = ed.Dataset.from_csv(path, target="kündigt")
    assert data.class_names == ["ja", "nein"]
    assert {"rate", "umsatz", "jahre", "name=Zoë", "name=Jürgen"} <= set(data.feature_names)
    raw = data.inverse_transform(np.concatenate([data.X_train, data.X_test]))
    j = data.feature_names.index("umsatz")
    assert sorted(set(np.round(raw[:, j], 2))) == [980.1, 1100.5, 2050.75, 2300.25]  # 2.300,25 -> 2300.25
    assert set(np.round(raw[:, data.feature_names.index("rate")], 2)) == {0.75, 1.5, 2.25, 3.5}
    assert "encoding cp1252, delimiter ';', decimal mark ','" in caplog.text
    assert any("read as cp1252" in note for note in data.notes)
    assert data.schema.kinds[data.feature_names.index("jahre")] == "integer"


def test_the_same_file_with_the_options_given(tmp_path):
    path = _european(tmp_path)
    data = ed.Dataset.from_csv(path, target="kündigt", encoding="cp1252", delimiter=";", decimal=",", scale="none")
    j = data.feature_names.index("umsatz")
    assert set(np.round(np.concatenate([data.X_train, data.X_test])[:, j].astype(np.float64), 2)) == {980.1, 1100.5, 2050.75, 2300.25}
    assert not any("detected" in note for note in data.notes)


def test_wrong_options_say_file_line_and_fix(tmp_path):
    path = _european(tmp_path)
    with pytest.raises(ValueError, match=r"kunden.csv: line 1 holds the byte b'\\xfc'.*utf-8.*--encoding cp1252"):
        ed.Dataset.from_csv(path, target="kündigt", encoding="utf-8")
    with pytest.raises(ValueError, match=r"kunden.csv: lines \[.*\] have a different number of fields.*split on ','.*--delimiter ';'"):
        ed.Dataset.from_csv(path, target="kündigt", delimiter=",", encoding="cp1252")
    with pytest.raises(ValueError, match=r"column 'rate' holds numbers written with a decimal comma \('1,5' on line 2\).*--decimal ,"):
        ed.Dataset.from_csv(path, target="kündigt", decimal=".")
    with pytest.raises(ValueError, match="unknown encoding 'latin-9x'"):
        ed.Dataset.from_csv(path, target="kündigt", encoding="latin-9x")
    with pytest.raises(ValueError, match="delimiter must be one character"):
        ed.Dataset.from_csv(path, target="kündigt", delimiter=";;")
    with pytest.raises(ValueError, match="cannot be told apart"):
        ed.Dataset.from_csv(path, target="kündigt", delimiter=",", decimal=",")


def test_an_undecodable_byte_is_reported_with_its_line_when_sniffing(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"a,b,label\n1,2,x\n3,4,y\n5,\x81\x8d,x\n" + b"6,7,y\n" * 10)  # bytes cp1252 leaves undefined
    with pytest.raises(ValueError, match=r"bad.csv: line 4 holds the byte b'\\x81'.*utf-8-sig nor cp1252.*--encoding latin-1"):
        ed.Dataset.from_csv(path, target="label")


def test_a_utf8_bom_tab_file(tmp_path):
    path = tmp_path / "tabs.tsv"
    body = "größe\tfarbe\tlabel\n" + "".join(f"{1.5 + i % 3}\t{'rot' if i % 2 else 'grün'}\t{i % 2}\n" for i in range(40))
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    data = ed.Dataset.from_csv(path, target="label")
    assert data.feature_names[0] == "größe" and "farbe=grün" in data.feature_names


def test_cli_reads_a_european_file_and_refuses_format_flags_without_csv(tmp_path, capsys):
    from explain_distill.cli import main

    assert main(["run", "--dataset", "iris", "--delimiter", ";", "--out", str(tmp_path / "o")]) == 2
    assert "only apply with --csv" in capsys.readouterr().err
    path = _european(tmp_path)
    assert main(["run", "--csv", str(path), "--target", "kündigt", "--encoding", "utf-8", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "kunden.csv: line 1" in err and "--encoding cp1252" in err and not (tmp_path / "o").exists()
