"""The QoS 0 PUBLISH packets the mirror writes itself, against MQTT 3.1.1's encoding."""

from __future__ import annotations

import pytest

from engine.mirror import parse_publish_packets, publish_packet, remaining_length, topic_header


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (321, b"\xc1\x02"),  # the specification's example
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_remaining_length_is_mqtts_variable_length_integer(n: int, encoded: bytes) -> None:
    assert remaining_length(n) == encoded


def test_remaining_length_refuses_what_mqtt_cannot_carry() -> None:
    with pytest.raises(ValueError, match="out of range"):
        remaining_length(268_435_456)


@pytest.mark.parametrize("size", [0, 1, 100, 121, 122, 16_000, 20_000, 3_000_000])
def test_a_packet_is_the_header_the_topic_and_the_payload(size: int) -> None:
    head = topic_header("kiwoom/5012345610/md/trade/005930")
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    packet = publish_packet(head, payload)
    n = len(head) + len(payload)
    assert packet == b"\x30" + remaining_length(n) + head + payload
    assert head[:2] == (len(head) - 2).to_bytes(2, "big")


def test_packets_in_one_buffer_parse_back_in_order() -> None:
    topics = ["p/md/trade/005930", "p/md/quote/000660", "p/주식/x"]
    payloads = [b"{}", b"a" * 200, b"b" * 17_000]
    buf = b"".join(
        publish_packet(topic_header(t), p) for t, p in zip(topics, payloads, strict=True)
    )
    assert parse_publish_packets(buf) == list(zip(topics, payloads, strict=True))
