package ipxe

import "testing"

func BenchmarkRender(b *testing.B) {
	s := testScripts(b)
	boot := Boot{Network: "prod", NetworkName: "production (v3)", Farm: 1234, Args: "console=ttyS0 zos-debug", KernelURL: "http://10.0.0.1:8080/kernel/net/prod.efi"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Render(boot); err != nil {
			b.Fatal(err)
		}
	}
}
