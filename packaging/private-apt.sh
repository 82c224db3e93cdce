# private-apt.sh: sourced by the pinned fetches (fetch-ipxe.sh, fetch-syslinux.sh). It gives
# apt a configuration and state of its own under a work directory, so a .deb of another
# Debian release can be downloaded by any user without touching the system's apt.
#
# private_apt_update WORK SUITE [ARCH]: sets apt_opts for apt-get and fetches SUITE's package
# lists from $MIRROR, signed by $KEYRING; with ARCH (arm64), that architecture's lists instead
# of the machine's. On failure it prints apt's output and returns 1.
# shellcheck shell=sh

private_apt_update() {
	_work=$1
	mkdir -p "$_work/etc/apt/sources.list.d" "$_work/etc/apt/preferences.d" "$_work/etc/apt/apt.conf.d" \
		"$_work/state/lists/partial" "$_work/cache/archives/partial"
	echo "deb [signed-by=$KEYRING] $MIRROR $2 main" >"$_work/etc/apt/sources.list"
	: >"$_work/status"
	apt_opts="-o Dir::Etc=$_work/etc/apt -o Dir::Etc::SourceList=$_work/etc/apt/sources.list
 -o Dir::Etc::SourceParts=$_work/etc/apt/sources.list.d -o Dir::Etc::Preferences=$_work/etc/apt/preferences
 -o Dir::Etc::PreferencesParts=$_work/etc/apt/preferences.d -o Dir::Etc::Parts=$_work/etc/apt/apt.conf.d
 -o Dir::State=$_work/state -o Dir::State::Lists=$_work/state/lists -o Dir::State::status=$_work/status
 -o Dir::Cache=$_work/cache -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Languages=none"
	if [ -n "${3:-}" ]; then
		apt_opts="$apt_opts -o APT::Architecture=$3 -o APT::Architectures::=$3"
	fi
	# shellcheck disable=SC2086
	apt-get $apt_opts -q update >"$_work/update.log" 2>&1 || { cat "$_work/update.log" >&2; return 1; }
}
