# shellcheck shell=bash
# Port helpers for scripts/run.sh and scripts/stop.sh (sourced, not run).
# On Linux they read /proc/net/tcp{,6} and /proc/PID/fd, so they see every
# listener, whatever address it bound; elsewhere they fall back to a
# connect on loopback and cannot tell whose a listener is.

# port_of ADDR: the port of host:port, :port or a bare port.
port_of() { echo "${1##*:}"; }

# listen_inodes PORT: socket inodes of the TCP listeners on PORT.
listen_inodes() {
	local hex
	hex=$(printf ':%04X' "$1")
	awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

have_proc_net() { [ -r /proc/net/tcp ]; }

# port_in_use PORT: something listens on PORT.
port_in_use() {
	if have_proc_net; then
		[ -n "$(listen_inodes "$1")" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# pid_has_socket PID INODE
pid_has_socket() {
	[ -n "$(find "/proc/$1/fd" -lname "socket:\[$2\]" -print -quit 2>/dev/null)" ]
}

# port_holder PORT: " (pid N: command)" for a listener this user can see, or nothing.
port_holder() {
	have_proc_net || return 0
	local inode fd pid
	for inode in $(listen_inodes "$1"); do
		fd=$(find /proc/[0-9]*/fd -lname "socket:\[$inode\]" -print -quit 2>/dev/null)
		[ -n "$fd" ] || continue
		pid=${fd#/proc/}
		pid=${pid%%/*}
		printf ' (pid %s: %s)' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80 | sed 's/ *$//')"
		return 0
	done
}

# listeners_owned_by PORT PID: PORT has a listener and every listener on it
# is PID's (a second Caddy sharing the port through SO_REUSEPORT is not).
# True when /proc cannot tell.
listeners_owned_by() {
	have_proc_net || return 0
	local inodes inode
	inodes=$(listen_inodes "$1")
	[ -n "$inodes" ] || return 1
	for inode in $inodes; do
		pid_has_socket "$2" "$inode" || return 1
	done
}
