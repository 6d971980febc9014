#include "test_util.hpp"

using namespace ewnet;
using namespace ewnet::test;

TEST_CASE("a channel view writes into its slice of the parent", "[tensor]") {
  Tensor<float> t({2, 5, 2, 3});
  Tensor<float> v = t.channels(1, 3);
  REQUIRE(v.shape() == Shape(2, 3, 2, 3));
  REQUIRE(v.batch_stride() == 30);
  REQUIRE(!v.contiguous());
  fill(v, 7.0f);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 5; ++c) REQUIRE(t.at(n, c, 1, 2) == ((c >= 1 && c <= 3) ? 7.0f : 0.0f));
  const auto dense = v.to_vector();
  REQUIRE(dense.size() == 36);
  for (float x : dense) REQUIRE(x == 7.0f);
}

TEST_CASE("copy_from between views of different strides", "[tensor]") {
  Random rng(1);
  const Tensor<double> a = random_tensor<double>({3, 4, 2, 2}, rng);
  Tensor<double> b({3, 9, 2, 2});
  b.channels(5, 4).copy_from(a);
  REQUIRE(b.channels(5, 4).to_vector() == a.to_vector());
  REQUIRE(b.channels(0, 5).to_vector() == std::vector<double>(3 * 5 * 4, 0.0));
  const std::vector<double> all = a.to_vector();
  REQUIRE(a.batch(1, 2).to_vector() == std::vector<double>(all.begin() + 16, all.end()));
}

TEST_CASE("bad views and copies are errors that name the shapes", "[tensor][errors]") {
  Tensor<float> t({2, 3, 4, 4});
  REQUIRE_THROWS_WITH(t.channels(2, 2), Catch::Contains("[2x3x4x4]"));
  REQUIRE_THROWS_AS(t.batch(1, 2), ShapeError);
  REQUIRE_THROWS_WITH(t.copy_from(Tensor<float>({2, 3, 4, 5})), Catch::Contains("[2x3x4x5]"));
  REQUIRE_THROWS_AS(Tensor<float>::from_vector({1, 2, 2, 2}, std::vector<float>(7)), ShapeError);
}

TEST_CASE("the CUDA device is a clear error without the CUDA backend or a GPU", "[tensor][device]") {
#ifndef EWNET_WITH_CUDA
  REQUIRE_THROWS_WITH(Tensor<float>({1, 1, 1, 1}, Device::cuda), Catch::Contains("ewnet::cuda"));
#endif
  REQUIRE(parse_device("cpu") == Device::cpu);
  REQUIRE_THROWS_WITH(parse_device("tpu"), Catch::Contains("tpu"));
}
