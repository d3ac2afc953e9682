#!/bin/bash
# Run on each worker before its job, in the code folder, with the attempt number as $1;
# labtui runs it again (up to install_attempts) until it succeeds.
set -e
echo "install attempt $1 on $(hostname)"
python3 --version
