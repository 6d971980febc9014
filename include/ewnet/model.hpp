// ewnet/model.hpp: the one header a user includes.
//
//   #include <ewnet/model.hpp>
//   ewnet::Model<float> net;                 // a graph of named layers
//   net.add(std::make_unique<ewnet::ImageInput<float>>("input", 3, 64, 64));
//   ...                                       // layers, inception modules, a classifier
//   ewnet::Sgdm<float> solver;                // SGD with momentum
//   net.forward(images, labels); net.backward(); solver.step(net, 1e-3);
#pragma once

#include <ewnet/blocks/inception.hpp>
#include <ewnet/error.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/layers/registry.hpp>
#include <ewnet/optim/schedule.hpp>
#include <ewnet/optim/sgdm.hpp>
#include <ewnet/tensor.hpp>
