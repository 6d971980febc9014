// Builds a two-layer classifier, trains one step and prints the loss: proof that a consumer
// compiles and links against ewnet::ewnet with nothing but a C++17 compiler.
#include <ewnet/model.hpp>

#include <cstdio>

int main() {
  ewnet::Model<float> net(1);
  net.add(std::make_unique<ewnet::ImageInput<float>>("input", 3, 8, 8));
  net.add(std::make_unique<ewnet::GlobalAvgPool<float>>("gap"));
  net.add(std::make_unique<ewnet::FullyConnected<float>>("fc", 2));
  net.add(std::make_unique<ewnet::Softmax<float>>("softmax"));
  net.add(std::make_unique<ewnet::Classification<float>>("output"));
  ewnet::Tensor<float> images({2, 3, 8, 8});
  ewnet::fill(images, 0.5f);
  ewnet::Sgdm<float> solver;
  net.forward(images, {0, 1});
  net.backward();
  solver.step(net, 1e-3);
  std::printf("consumer ok: loss %.4f over %zu layers\n", double(net.loss()), net.layer_count());
  return 0;
}
