/*
 * stub.c: an EFI application that carries a stock iPXE EFI binary and a script, and starts
 * that iPXE with the script as its command line.
 *
 * Why: bootstrapd's /uefi/ endpoint must hand out ONE .efi file that runs a per-request script.
 * Stock iPXE cannot carry a script, and rebuilding iPXE with EMBED= needs the iPXE source, which
 * this project cannot fetch (Debian's mirrors reachable here serve binary packages only). iPXE
 * (since 2023, src/interface/efi/efi_cmdline.c) executes its EFI load options as a script after
 * stripping the first word (the image name). This stub is built once per architecture with the
 * stock binary linked in (.incbin); bootstrapd overwrites the fixed-size script slot below in
 * place per request (ipxe/media), so a request costs one memcpy, not a compiler.
 *
 * The slot: 32-byte marker, little-endian uint32 length, then SLOT_SIZE bytes of script
 * (zero-filled after length). Length 0 = no command line: iPXE does its normal autoboot.
 *
 * Built with -DSNPONLY around snponly.efi, the stub also names a network device as iPXE's
 * DeviceHandle: snponly.efi drives only the SNP device its image was loaded from
 * (src/drivers/net/efi/snponly.c), and loaded from a stick that is a disk, so it would find
 * no NIC at all. The first handle with the Simple Network Protocol is taken.
 */
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
typedef u64 uintn;
typedef uintn efi_status;
typedef void *efi_handle;

#define EFIAPI __attribute__((ms_abi))
#if defined(__aarch64__)
#undef EFIAPI
#define EFIAPI
#endif

#define SLOT_SIZE 4096
#define EFI_LOAD_ERROR 0x8000000000000001ULL
#define EFI_OUT_OF_RESOURCES 0x8000000000000009ULL

struct efi_guid { u32 a; u16 b, c; u8 d[8]; };

struct efi_table_header { u64 signature; u32 revision, header_size, crc32, reserved; };

struct efi_simple_text_output {
	void *reset;
	efi_status (EFIAPI *output_string)(struct efi_simple_text_output *self, const u16 *s);
};

struct efi_boot_services {
	struct efi_table_header hdr;
	void *raise_tpl, *restore_tpl;
	void *allocate_pages, *free_pages, *get_memory_map;
	efi_status (EFIAPI *allocate_pool)(u32 type, uintn size, void **buf);
	efi_status (EFIAPI *free_pool)(void *buf);
	void *create_event, *set_timer, *wait_for_event, *signal_event, *close_event, *check_event;
	void *install_protocol_interface, *reinstall_protocol_interface, *uninstall_protocol_interface;
	efi_status (EFIAPI *handle_protocol)(efi_handle h, const struct efi_guid *g, void **iface);
	void *reserved, *register_protocol_notify;
	efi_status (EFIAPI *locate_handle)(u32 search_type, const struct efi_guid *g, void *key,
					   uintn *size, efi_handle *buf);
	void *locate_device_path;
	void *install_configuration_table;
	efi_status (EFIAPI *load_image)(u8 boot_policy, efi_handle parent, void *device_path,
					void *source, uintn size, efi_handle *image);
	efi_status (EFIAPI *start_image)(efi_handle image, uintn *exit_size, u16 **exit_data);
	void *exit, *unload_image, *exit_boot_services, *get_next_monotonic_count, *stall;
	void *set_watchdog_timer;
	efi_status (EFIAPI *connect_controller)(efi_handle h, efi_handle *drivers, void *remaining,
						u8 recursive);
};

struct efi_system_table {
	struct efi_table_header hdr;
	u16 *firmware_vendor;
	u32 firmware_revision;
	efi_handle console_in_handle;
	void *con_in;
	efi_handle console_out_handle;
	struct efi_simple_text_output *con_out;
	efi_handle standard_error_handle;
	void *std_err;
	void *runtime_services;
	struct efi_boot_services *boot_services;
};

struct efi_loaded_image {
	u32 revision;
	efi_handle parent_handle;
	struct efi_system_table *system_table;
	efi_handle device_handle;
	void *file_path;
	void *reserved;
	u32 load_options_size;
	void *load_options;
	/* more fields follow; not used */
};

static const struct efi_guid loaded_image_guid = {
	0x5b1b31a1, 0x9562, 0x11d2, {0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
static const struct efi_guid device_path_guid = {
	0x09576e91, 0x6d3f, 0x11d2, {0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
#ifdef SNPONLY
static const struct efi_guid snp_guid = {
	0xa19832b9, 0xac25, 0x11d3, {0x9a, 0x2d, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d}};
#define ALL_HANDLES 0
#define BY_PROTOCOL 2

/* The first handle with the Simple Network Protocol, or 0. */
static efi_handle find_nic(struct efi_boot_services *bs) {
	efi_handle handles[32];
	uintn size = sizeof(handles);
	if (bs->locate_handle(BY_PROTOCOL, &snp_guid, 0, &size, handles) != 0 || size < sizeof(efi_handle))
		return 0;
	return handles[0];
}

/*
 * first_nic finds an SNP device, connecting every driver first when there is none: booting
 * from a disk, firmware (OVMF, many boards' fast boot) connects only what that boot needs,
 * so the NIC's own driver has not started yet (the UEFI shell's `connect -r`).
 */
static efi_handle first_nic(struct efi_boot_services *bs) {
	efi_handle nic = find_nic(bs), *all = 0;
	uintn size = 0, i;
	if (nic)
		return nic;
	bs->locate_handle(ALL_HANDLES, 0, 0, &size, 0);
	if (!size || bs->allocate_pool(2, size, (void **)&all) != 0)
		return 0;
	if (bs->locate_handle(ALL_HANDLES, 0, 0, &size, all) == 0)
		for (i = 0; i < size / sizeof(efi_handle); i++)
			bs->connect_controller(all[i], 0, 0, 1);
	bs->free_pool(all);
	return find_nic(bs);
}
#endif

/* Device path nodes: type, subtype, 16-bit length; the end node is type 0x7f. */
static uintn dp_size(const u8 *dp, int with_end) {
	uintn n = 0;
	while (dp[n] != 0x7f) {
		u16 l = (u16)(dp[n + 2] | (dp[n + 3] << 8));
		if (l < 4)
			return 0;
		n += l;
	}
	return with_end ? n + 4 : n;
}

/* The slot bootstrapd patches. volatile: the compiler must not fold the placeholder. */
struct slot {
	char marker[32];
	u32 len;
	char text[SLOT_SIZE];
};
__attribute__((used, aligned(16))) volatile struct slot bootstrapd_script_slot = {
	"BOOTSTRAPD-IPXE-SCRIPT-SLOT-V1!", 0, {0}};

/* The stock iPXE image, linked in by build.sh (IPXE_EFI is its path). */
extern const u8 ipxe_image_start[], ipxe_image_end[];
__asm__(".section .rdata,\"dr\"\n"
	".p2align 4\n"
	".globl ipxe_image_start\nipxe_image_start:\n"
	".incbin \"" IPXE_EFI "\"\n"
	".globl ipxe_image_end\nipxe_image_end:\n"
	".text\n");

static void say(struct efi_system_table *st, const u16 *s) {
	if (st->con_out)
		st->con_out->output_string(st->con_out, s);
}

/* The first word of the load options is the image name, which iPXE strips. */
static const char argv0[] = "ipxe.efi ";

efi_status EFIAPI efi_main(efi_handle self, struct efi_system_table *st) {
	struct efi_boot_services *bs = st->boot_services;
	struct efi_loaded_image *me = 0, *child_li = 0;
	efi_handle child = 0;
	u16 *opts = 0;
	u8 *devpath = 0, *full = 0;
	u32 len = bootstrapd_script_slot.len;
	efi_status rc;

	if (len > SLOT_SIZE)
		len = SLOT_SIZE;
	rc = bs->handle_protocol(self, &loaded_image_guid, (void **)&me);
	if (rc)
		goto fail;
	/*
	 * iPXE refuses to start without a device path on its DeviceHandle, and looks for files
	 * beside itself: give it our device's path plus our file path, as if the firmware had
	 * loaded it from where we were loaded.
	 */
	if (me->device_handle && me->file_path &&
	    bs->handle_protocol(me->device_handle, &device_path_guid, (void **)&devpath) == 0 &&
	    devpath) {
		uintn a = dp_size(devpath, 0), b = dp_size(me->file_path, 1), i;
		if (b && bs->allocate_pool(2, a + b, (void **)&full) == 0) {
			for (i = 0; i < a; i++)
				full[i] = devpath[i];
			for (i = 0; i < b; i++)
				full[a + i] = ((const u8 *)me->file_path)[i];
		}
	}
	rc = bs->load_image(0, self, full ? (void *)full : (void *)devpath,
			    (void *)ipxe_image_start,
			    (uintn)(ipxe_image_end - ipxe_image_start), &child);
	if (rc)
		goto fail;
	if (len) {
		uintn n = sizeof(argv0) - 1 + len, i, j = 0;
		/* 2 = EfiLoaderData */
		rc = bs->allocate_pool(2, (n + 1) * sizeof(u16), (void **)&opts);
		if (rc)
			goto fail;
		for (i = 0; i < sizeof(argv0) - 1; i++)
			opts[j++] = (u8)argv0[i];
		for (i = 0; i < len; i++)
			opts[j++] = (u8)bootstrapd_script_slot.text[i];
		opts[j] = 0;
		rc = bs->handle_protocol(child, &loaded_image_guid, (void **)&child_li);
		if (rc)
			goto fail;
		child_li->load_options = opts;
		child_li->load_options_size = (u32)(n * sizeof(u16));
	}
#ifdef SNPONLY
	{
		efi_handle nic = first_nic(bs);
		if (!child_li && bs->handle_protocol(child, &loaded_image_guid, (void **)&child_li) != 0)
			child_li = 0;
		if (nic && child_li)
			child_li->device_handle = nic;
		else
			say(st, u"bootstrapd: no network device with SNP found\r\n");
	}
#endif
	rc = bs->start_image(child, 0, 0);
	return rc;
fail:
	say(st, u"bootstrapd: could not start the embedded iPXE\r\n");
	return rc ? rc : EFI_LOAD_ERROR;
}
