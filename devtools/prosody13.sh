#!/usr/bin/env bash
# Prosody 13 beside Debian 12's Prosody 0.12, for running tests/prosody against
# both: downloads Debian's bookworm-backports package (nothing is installed),
# unpacks it into DIR and points its scripts at the unpacked tree. Prints the
# directory to put first in PATH; with PROSODY_LIB=DIR/root/usr/lib/prosody the
# tests' Lua oracle reads Prosody 13's mod_groups.lua too.
#
#   bin=$(bash devtools/prosody13.sh DIR)
#   PATH=$bin:$PATH PROSODY_LIB=DIR/root/usr/lib/prosody pytest tests/prosody
set -euo pipefail
dir=$(realpath -m "${1:?usage: prosody13.sh DIR}")
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/bin"
echo "deb http://deb.debian.org/debian bookworm-backports main" > "$dir/sources.list"
apt_get() {
    apt-get -q -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" -o APT::Sandbox::User=root "$@"
}
apt_get update >&2
(cd "$dir" && apt_get download prosody/bookworm-backports >&2)
rm -rf "$dir/root"
dpkg -x "$dir"/prosody_*.deb "$dir/root"
for tool in prosody prosodyctl; do
    sed -e "s#^CFG_SOURCEDIR='/usr/lib/prosody'#CFG_SOURCEDIR='$dir/root/usr/lib/prosody'#" \
        -e "s#^CFG_PLUGINDIR='/usr/lib/prosody/modules/'#CFG_PLUGINDIR='$dir/root/usr/lib/prosody/modules/'#" \
        "$dir/root/usr/bin/$tool" > "$dir/bin/$tool"
    chmod 755 "$dir/bin/$tool"
done
grep -q "^CFG_SOURCEDIR='$dir/" "$dir/bin/prosodyctl" || { echo "prosodyctl's paths could not be set" >&2; exit 1; }
echo "$dir/bin"
