from __future__ import annotations

from ferryman.worker.backends._llama_engine import StopScanner


def _scan(stops: tuple[str, ...], pieces: list[str]) -> tuple[list[str], bool, str]:
    scanner = StopScanner(stops)
    shown: list[str] = []
    for piece in pieces:
        safe, is_stopped = scanner.push(piece)
        shown.append(safe)
        if is_stopped:
            return shown, True, scanner.text
    shown.append(scanner.rest())
    return shown, False, scanner.text


def test_stop_scanner_passes_text_through_without_stops() -> None:
    assert _scan((), ["Hel", "lo"]) == (["Hel", "lo", ""], False, "Hello")


def test_stop_scanner_holds_back_a_possible_stop_start_until_it_is_ruled_out() -> None:
    assert _scan(("END",), ["Hi E", "N", "ough"]) == (["Hi ", "", "ENough", ""], False, "Hi ENough")


def test_stop_scanner_cuts_at_a_stop_split_across_pieces() -> None:
    assert _scan(("END",), ["Hi E", "N", "D more"]) == (["Hi ", "", ""], True, "Hi ")


def test_stop_scanner_cuts_at_the_earliest_of_several_stops() -> None:
    assert _scan(("\n\n", "."), ["one. two\n\n"]) == (["one"], True, "one")
