// Package kernels owns the kernels directory (paths.kernels): the kernel files at its top,
// the net/<network>.efi links that name each network's default, the temporary files of
// uploads in progress and the sha256 digests of the files.
//
// Every access goes through an os.Root, so a symlink planted in the directory can never
// expose a file outside it. Changes are atomic: an upload is written beside its final name,
// fsynced and renamed over it; a network's default is a new link renamed over the old one.
// A node fetching a kernel meanwhile gets the old file or the new one, never half of one.
//
// A Puller mirrors kernels from upstream URLs into the directory (pull.go): it is the one
// part that speaks HTTP, as a client, and keeps each network's pull state (conditional-GET
// validators, recent pulls) in .pull-<network>.json beside the kernels.
//
// The package must not touch anything outside the directory, and knows nothing of serving
// HTTP, node records or configuration: which networks exist and which nodes boot a file are the
// caller's to say (Remove's inUse, List's networks). Kernel names follow ipxe's rules
// (ipxe.ValidateKernel), since they end up in boot scripts.
package kernels
