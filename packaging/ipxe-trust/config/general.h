/*
 * bootstrapd's trusted iPXE build: the options Debian's ipxe 1.21.1+git20250501 enables on
 * top of upstream's defaults (read off Debian's binaries: their commands and protocols; the
 * build script's check compares them again after every build).
 */
#define DOWNLOAD_PROTO_HTTPS	/* https:// */
#define DOWNLOAD_PROTO_NFS	/* nfs:// */
#define VLAN_CMD		/* vcreate, vdestroy */
#define REBOOT_CMD		/* reboot */
#define POWEROFF_CMD		/* poweroff */
#define PING_CMD		/* ping */
#define CONSOLE_CMD		/* console, colour, cpair */
#define CERT_CMD		/* certstat, certstore, certfree */
