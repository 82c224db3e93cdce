/*
 * The one option Debian's build lacks: iPXE copies its console to the syslog server named by
 * the "syslog" setting (unset: nothing is sent). bootstrapd's boot script sets it when the
 * appliance's syslog receiver is on, so the node's timeline shows what iPXE printed.
 */
#define CONSOLE_SYSLOG
