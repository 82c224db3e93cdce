// Package ipxe holds everything bootstrapd knows about iPXE: the catalogue of stock iPXE
// binaries (which file each firmware architecture loads), the boot scripts served over HTTP
// and their escaping rules, and the boot policy (Policy): which script and which kernel a
// boot gets, decided the same way for /ipxe/, /provision/ and `bootstrapd media`. A network
// has an x86-64 and an arm64 default kernel (DefaultKernel); the script itself picks one with
// iPXE's ${buildarch}, since media and /ipxe/ URLs reach it without a DHCP exchange.
//
// The binaries come from Debian's ipxe package (1.21.1+git20250501 or later); bootstrapd never
// compiles iPXE per request.
//
// It owns the rules for what may reach a script (Metachars, ValidateURL, ValidateBaseURL,
// ValidateKernel, ValidateArgs): every other package calls them rather than keeping its own.
// It must not do I/O beyond reading the catalogue's directory: the boot policy is a pure
// function over what it is passed (a KernelSet, the record the caller looked up).
package ipxe
