"""kafka-python checks a CRC-32C over every record batch it fetches and sends; it must use the C implementation.

Without the ``crc32c`` package kafka-python silently falls back to a
pure-Python loop (about 2 MB/s on the shared build box). A consumer polling a
partition full of big records then spends minutes inside ``poll()`` before it
returns a single record: the plate indexer "consumed nothing for 600 s" in the
poison benchmark at 300 records per kind (issue 10), while its step, once the
records arrived, could outlast the group's poll interval and be re-read.
"""

from __future__ import annotations

import os

from kafka.record import util
from kafka.record._crc32c import crc as crc32c_pure_python


def test_kafka_python_checks_record_crcs_with_the_c_implementation() -> None:
    implementation = util.calc_crc32c.__defaults__[0]  # type: ignore[index]
    assert implementation is not crc32c_pure_python, "install the crc32c package (pyproject.toml)"


def test_c_and_pure_python_crc32c_agree() -> None:
    data = memoryview(os.urandom(4096) + b"kuzet")
    assert util.calc_crc32c(data) == crc32c_pure_python(data)
