package tensor_test

import (
	"fmt"

	"github.com/minnowml/minnow/tensor"
	_ "github.com/minnowml/minnow/tensor/cpu" // registers the CPU backend
)

// A tiny linear model: the gradient of the mean squared error flows back to
// the weight through the tape.
func Example() {
	x := tensor.FromFloat32([]float32{1, 2, 3, 4}, 2, 2)
	w := tensor.FromFloat32([]float32{0.5, -1}, 2, 1).SetRequiresGrad(true)
	y := tensor.FromFloat32([]float32{1, 0}, 2, 1)

	loss := x.MatMul(w).Sub(y).Square().Mean()
	loss.Backward()

	fmt.Printf("loss %.3f\n", loss.Item())
	fmt.Println(w.Grad().Float32s())
	// Output:
	// loss 6.250
	// [-10 -15]
}

// Tensors print their dtype, shape, backend and values, which is what a
// notebook shows.
func ExampleTensor_String() {
	t := tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	fmt.Println(t)
	// Output:
	// Tensor(f32 [2 3] on cpu)
	// [[1 2 3]
	//  [4 5 6]]
}

// Sampling and evaluation run under NoGrad: nothing is recorded.
func ExampleNoGrad() {
	w := tensor.Ones(3).SetRequiresGrad(true)
	tensor.NoGrad(func() {
		fmt.Println(w.Scale(2).RequiresGrad())
	})
	// Output: false
}
