// Package httpd is bootstrapd's HTTP side (gin), a thin layer over the packages that do the
// work. It owns the routes and what is HTTP about them: parsing URLs (ParseBootPath), status
// codes and error answers, HEAD and Range, write deadlines and the connection cap, trusted
// proxies and the base URL of scripts, bearer-token and admin-socket authentication, the
// admin socket itself, the /metrics handler, the operator's web page and the CSV format of
// import and export.
//
// What a boot gets (record, default_node or wait; which kernel) is ipxe.Policy's decision;
// the kernels directory is store/kernels'; node records and boot activity are the store's
// (reached through the Nodes interface); media are built by ipxe/media. Each comes in
// through Config as a small interface declared here, so the handlers can be tested with
// fakes.
//
// It must not touch the disk itself (the kernels directory only through Kernels; its one
// file is the admin socket), hold decisions that `bootstrapd media` also needs (those are
// ipxe's), or change process-wide state: gin's mode and the umask are the program's, and New
// leaves them alone. Values from URLs and records reach a script only after ipxe's
// validation.
package httpd
