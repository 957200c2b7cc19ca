// Package results owns a run's directory: its layout (results/<test>/<timestamp>/, the
// latest link), and the files written into it — test.json, results.json and, for an
// invalid verdict, linearizability.html. It writes what the checker decided and never
// decides anything itself. Every file is written through a temporary file and a rename,
// so a reader never sees half of one.
package results
