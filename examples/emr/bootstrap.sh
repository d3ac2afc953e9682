#!/bin/bash
# Runs on every node of each student's cluster before it takes work (an EMR bootstrap
# action, as the hadoop user with sudo). labtui uploads it to the course's bucket first.
# Arguments: the course's data bucket.
set -euo pipefail
echo "export COURSE_DATA=s3://$1/" | sudo tee /etc/profile.d/course.sh >/dev/null
echo "course environment set on $(hostname)"
