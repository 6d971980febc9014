// ewnet_preprocess_dump SIZE MODE OUT FILE...: each image file as ewnet's loader gives it to a
// network (data::load_for_input, geometry MODE: squash or crop), written to OUT/<i>.rgb as
// SIZE x SIZE x 3 bytes, for torchvision_preprocess.py to compare with torchvision's transforms.
#include <cstdio>
#include <fstream>
#include <string>

#include <ewnet/data/image.hpp>

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: ewnet_preprocess_dump SIZE squash|crop OUT FILE...\n");
    return 2;
  }
  try {
    const int size = std::stoi(argv[1]);
    const ewnet::data::ResizeMode mode = ewnet::data::parse_resize_mode(argv[2]);
    for (int i = 4; i < argc; ++i) {
      const ewnet::data::Image img = ewnet::data::load_for_input(argv[i], size, mode);
      std::ofstream out(std::string(argv[3]) + "/" + std::to_string(i - 4) + ".rgb", std::ios::binary);
      out.write(reinterpret_cast<const char*>(img.rgb.data()), std::streamsize(img.rgb.size()));
      if (!out) throw ewnet::IoError(std::string(argv[3]) + ": cannot write");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
