// Package httpd is bootstrapd's HTTP side (gin): boot scripts (/ipxe/…, /provision/<mac>),
// kernels (/kernel/…), the iPXE binaries for UEFI HTTP Boot (/boot/…), /metrics and the
// admin API (/api/v1, over the admin unix socket or with a bearer token).
//
// Handlers stay thin: parse the request with a pure function, ask ipxe and store, write the
// answer. Values from URLs and records reach a script only after ipxe's validation.
package httpd
