package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mozilla-services/teckenrun/internal/emulator"
)

// runEmulator is "teckenrun emulator": the embedded emulator as a
// long-running server, for trying plans and for benchmarks.
func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("teckenrun emulator", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8000", "listen on this `ADDR`")
	latency := fs.Duration("latency", 15*time.Millisecond, "simulated storage lookup time of an uncached key")
	discard := fs.Bool("discard-uploads", false, "check uploaded zips but keep none of their bytes (for benchmarks)")
	// As for teckenrun's own flags, exitCode prints a parse error once,
	// and only -h prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprintf(stderr, "usage: teckenrun emulator [flags]\n\nServes the embedded Tecken emulator until interrupted.\n\nFlags:\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return usageErrorf("emulator: %w (teckenrun emulator -h lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("emulator: unexpected arguments %q", fs.Args())
	}
	emu := emulator.NewEmbedded()
	emu.SetLatency(*latency)
	emu.SetDiscardUploads(*discard)
	url, stop, err := emu.Start(*listen)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "Tecken emulator on %s (Auth-Token for uploads: %s)\n", url, emulator.EmbeddedToken)
	<-ctx.Done()
	return nil
}
