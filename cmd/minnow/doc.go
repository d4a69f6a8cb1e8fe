// Command minnow trains, fine-tunes and exports small language models.
//
// A run is a YAML recipe (package recipes): `minnow recipes ls` lists the
// built-in ones, `minnow recipes cp NAME FILE` copies one to edit,
// `minnow validate RECIPE` checks one, and `minnow run RECIPE [--set
// key.path=value ...]` runs it into runs/<name>-<timestamp>/ (`train` is
// an alias of `run`). `minnow run --resume RUNDIR` continues a run from
// its last checkpoint, `minnow runs ls` lists runs with their final
// metrics, and `minnow plot RUNDIR...` draws their curves. Bad input
// exits with status 2, a failed run with 1, and a run stopped by Ctrl-C
// (which saves a checkpoint first) with 130.
package main
