"""Which parsers read a cached message (service.backoff.coverage).

A state's cache holds what the parsers made of each message when it was read, and its
parse failures are not fetched again (store/failures.py). So a cache other parsers read
is read again in full once (service.backoff.cache_short): a fixed parser reaches the mail
read before it, and a message the old ones could not read is fetched again.
"""

from __future__ import annotations

import sys

# What the parsers make of a message, numbered. Bumped whenever parse_headers, the FETCH
# parser or the body checks' parser (bodytext) give any message other fields;
# tests/integration/test_parser_generation.py fails until it is, with the new digest.
GENERATION = 1
# With the Python they run on: the stdlib's email package reads the odd header our fast
# paths leave to it, and its address parser changed within 3.11 (gh-102988, the fix for
# CVE-2023-27043): three of the corpus's messages read otherwise on 3.11.2 and 3.11.7.
PARSERS = f"{GENERATION} on Python {'.'.join(map(str, sys.version_info[:3]))}"
