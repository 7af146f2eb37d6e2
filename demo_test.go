package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

var update = flag.Bool("update", false, "rewrite golden files and the demo data under plans/demo")

// demoQueries builds plans/demo/queries.csv and missing.csv from the
// embedded store, so that the demo's expectations are the truth about it:
// every 200 row is stored, every 404 row is not.
func demoQueries() (queries, missing []byte) {
	var q, m bytes.Buffer
	q.WriteString("URI,STATUS CODE,PRIVATE,COUNT\n")
	m.WriteString("debug_file,debug_id,code_file,code_id\n")
	const public = "/org.mozilla.crash-stats.symbols-public/v1/"
	for i, mod := range emulator.EmbeddedModules() {
		fmt.Fprintf(&q, "%s%s,200,false,%d\n", public, mod.Key(), 3+i%4)
		if mod.CodeFile != "" {
			fmt.Fprintf(&m, "%s,%s,%s,%s\n", mod.DebugFile, mod.DebugID, mod.CodeFile, mod.CodeID)
		}
	}
	misses := []struct{ file, id, code, codeID string }{
		{"nvwgf2umx.pdb", "8A2C0D6E4AEB4C3C9E5B0B8F0F2A7C301", "nvwgf2umx.dll", "5B6DBA8B1AB000"},
		{"AccessibleHandler.pdb", "136E9A4DAB9F44E99D62F7C0FEBFA48C2", "AccessibleHandler.dll", "593B15FC25000"},
		{"igd10iumd64.pdb", "1F3F2B8A9C7D4E5F8A9B0C1D2E3F40512", "", ""},
		{"libEGL.pdb", "0C9B2D8E7F6A4B3C2D1E0F9A8B7C6D5E1", "libEGL.dll", "5D4C3B2A1F000"},
	}
	for _, x := range misses {
		fmt.Fprintf(&q, "%s%s/%s/%s,404,false,4\n", public, x.file, x.id, strings.TrimSuffix(x.file, ".pdb")+".sym")
		fmt.Fprintf(&m, "%s,%s,%s,%s\n", x.file, x.id, x.code, x.codeID)
	}
	// S3 logged 403 for the private bucket; Tecken answers 404.
	q.WriteString("/org.mozilla.crash-stats.symbols-private/v1/NPSWF64.pdb/6E7A10B7928243D59C1F015655D308231/NPSWF64.sym,403,true,2\n")
	// Names Tecken ignores without a lookup (Debug-Time: 0).
	q.WriteString(public + "firefox.pdb/0123456789ABCDEF0123456789ABCDEF1/file.ptr,404,false,2\n")
	q.WriteString(public + "firefox.pdb/0123456789ABCDEF0123456789ABCDEF1/firefox.exe,404,false,1\n")
	// S3 served it, but it is gone since: a wrong answer the report shows.
	q.WriteString(public + "gone.pdb/FEDCBA9876543210FEDCBA98765432101/gone.sym,200,false,1\n")
	// Junk rows, as generate-csv-logs.py wrote them for non-GET requests.
	q.WriteString("HEAD " + public + "libxul.so/8C1A7F0E2D3B4C5D6E7F8091A2B3C4D50/libxul.so.sym HTTP/1.1,200,false,1\n")
	q.WriteString("/favicon.ico,404,false,1\n")
	return q.Bytes(), m.Bytes()
}

func TestDemoDataMatchesEmbeddedStore(t *testing.T) {
	q, m := demoQueries()
	records, _ := emulator.EmbeddedRecords()
	for path, want := range map[string][]byte{"plans/demo/queries.csv": q, "plans/demo/missing.csv": m, "plans/demo/symbols-uploaded.json": records} {
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with the embedded store; run go test -run TestDemoData -update", path)
		}
	}
}
