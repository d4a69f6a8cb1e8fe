package lora_test

import (
	"fmt"

	"github.com/minnowml/minnow/lora"
	"github.com/minnowml/minnow/model"
	"github.com/minnowml/minnow/tensor"
	"github.com/minnowml/minnow/train"
)

// ExampleApply attaches rank-8 adapters to the attention projections of a
// small Llama, trains them a few steps while the base stays frozen, then
// merges them into the weights for inference.
func ExampleApply() {
	m, _ := model.New(model.Config{ModelType: "llama", VocabSize: 32, HiddenSize: 32, IntermediateSize: 64,
		NumHiddenLayers: 2, NumAttentionHeads: 4, MaxPositionEmbeddings: 16}, be, tensor.Float32, 1)
	ad, err := lora.Apply(m, lora.Config{R: 8, Alpha: 16, Targets: lora.Targets{"q", "k", "v", "o"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	opt, _ := train.NewAdamW(train.AdamWConfig{LR: 1e-2}, train.ParamGroup{Params: model.Tensors(ad.Params())})
	ids := tensor.From(be, tensor.Int32, []int32{1, 2, 3, 4, 5, 6, 7, 8}, 1, 8)
	for range 5 {
		loss := m.Loss(ids, ids)
		loss.Backward()
		_ = opt.Step(1e-2, 1)
		loss.Release()
	}
	fmt.Println(len(ad.Layers()), "adapted layers,", ad.NumParams(), "trainable values")
	fmt.Println(ad.Params()[0].Name)
	fmt.Println("merge:", ad.Merge())
	// Output:
	// 8 adapted layers, 4096 trainable values
	// blk.0.attn_q.weight.lora_a
	// merge: <nil>
}
