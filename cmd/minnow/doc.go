// Command minnow trains, fine-tunes and exports small language models. This
// version offers `minnow version` and `minnow bench core`; training
// commands arrive with the recipes.
package main
