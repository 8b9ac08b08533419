#!/bin/sh
# Regenerate the autotools build system: ./autogen.sh && ./configure && make
set -e
cd "$(dirname "$0")"
autoreconf -fi
