// help.hpp: ewnet-train's usage line and --help text.
#pragma once

namespace {
const char* kUsage = "ewnet-train DATA_DIR [--out DIR] [--epochs N] [--batch N] [--lr RATE] [--image-size N] "
                     "[--schedule constant|cosine] [--warmup N] [--recipe paper] [--seed N] [--split-file CSV] "
                     "[--device cpu|cuda] [--precision fp32|bf16] [--model NAME [--aux]] [--init FILE] [--new-layer-factor F] [--resume [--allow-changed-settings]] [--no-progress]";
const char* kHelp =
    "Trains the paper's 67-layer inception-residual model (or --model) from random weights (or --init) on\n"
    "DATA_DIR/<class>/<image>.\n"
    "Defaults the paper states: SGDM, batch 64, learning rate 1e-3, up to 320 epochs, an 80/20\n"
    "training/validation split (stratified by class here). Not stated by the paper: momentum 0.9 and L2\n"
    "1e-4 are MATLAB's trainingOptions('sgdm') defaults; the augmentation (random crop, shift, rotation,\n"
    "flip) is ewnet's choice. Validates every epoch; keeps OUT/best.safetensors and\n"
    "OUT/last.safetensors, and writes log.csv, report.json, training-curves.svg and confusion.svg.\n\n"
    "  --out DIR          output folder (default ewnet-train-run)\n"
    "  --epochs N         epochs (default 320)\n"
    "  --batch N          mini-batch size (default 64)\n"
    "  --lr RATE          learning rate (default 0.001)\n"
    "  --schedule S       constant (default, the paper's) or cosine: a linear warm-up, then half a cosine down\n"
    "                     to 1% of the rate at the last epoch (docs/transfer-learning.md measured it: no gain)\n"
    "  --warmup N         warm-up epochs of the cosine schedule (default 2)\n"
    "  --recipe paper     say which settings the paper states (the defaults) and which are ewnet's choice\n"
    "  --image-size N     square input size, a multiple of 8 (default 224, the paper's; 64 or 112 are quick on a CPU)\n"
    "  --seed N           weights, split, shuffling and augmentation (default 0)\n"
    "  --split-file CSV   take the split from a file (columns file,split; 'train' trains, 'val'/'test' validate)\n"
    "  --device cpu|cuda  where to train (default cpu)\n"
    "  --precision fp32|bf16  bf16: convolutions and fully connected layers in bfloat16, float32 weights\n"
    "                     and sums (the CPU, with AVX512-BF16 or AMX; default fp32)\n"
    "  --model NAME       paper (default: the paper's 67-layer model), googlenet, resnet18 or inception-v3\n"
    "                     (torchvision's networks, docs/model.md; inception-v3 needs at least 75x75)\n"
    "  --aux              with googlenet or inception-v3: train their auxiliary classifiers too (extra\n"
    "                     losses weighted 0.3 and 0.4 in training only; inception-v3's needs 299x299 images)\n"
    "  --init FILE        start from these weights instead of random ones: a file written by\n"
    "                     tools/torch_to_safetensors.py (e.g. torchvision's ImageNet weights) or an ewnet\n"
    "                     checkpoint of the same network. A classifier for another number of classes is\n"
    "                     replaced by a fresh one (MATLAB's transfer recipe) and every layer trains\n"
    "  --new-layer-factor F  learning-rate factor of that new classifier (default 10, MATLAB's example's)\n"
    "  --resume           continue OUT's interrupted run from OUT/last.safetensors\n"
    "  --allow-changed-settings  let --resume continue although the seed, batch, rate, image size or data\n"
    "                     differ from the checkpoint's (refused by default, naming each difference)\n"
    "  --no-progress      no progress bar on stderr\n";
}  // namespace
