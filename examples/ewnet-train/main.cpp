// ewnet-train: trains the paper's model from scratch on an image folder (the source domain).
#include <iostream>

#include <cli.hpp>
#include <data.hpp>
#include <options.hpp>

#include "help.hpp"

int main(int argc, char** argv) {
  return cli::run("ewnet-train", kUsage, [&] {
    const cli::Args a(argc, argv,
                      {"out", "epochs", "batch", "lr", "image-size", "seed", "split-file", "device", "precision",
                       "model", "init", "new-layer-factor", "schedule", "warmup", "recipe", "resize"},
                      {"resume", "allow-changed-settings", "no-progress", "aux"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() != 1) throw cli::UsageError("give exactly one data folder");
    pipeline::DataOptions d;
    d.dir = a.positional()[0];
    d.seed = a.get_seed("seed", 0);
    d.split_file = a.get("split-file", "");
    ewnet::train::TrainOptions t = pipeline::run_options(a, "ewnet-train-run", d.seed);
    t.epochs = a.get_int("epochs", 320);
    t.batch = a.get_int("batch", 64);
    const double rate = a.get_double("lr", 1e-3);
    const pipeline::ScheduleChoice schedule = pipeline::schedule_option(a, "schedule", "epochs", t.epochs);
    t.schedule = schedule.schedule(rate, t.epochs);
    const ewnet::transfer::Network net = pipeline::network_options(a, 10);
    pipeline::geometry_options(a, net, 224, d);
    const std::string recipe = a.get("recipe", "");
    if (!recipe.empty() && recipe != "paper") throw cli::UsageError("--recipe: only 'paper' applies to ewnet-train");
    if (recipe == "paper") {
      if (schedule.cosine) throw cli::UsageError("--recipe paper trains at a constant rate");
      pipeline::print_paper_recipe(std::cout, ewnet::str(d.image_size, "x", d.image_size, " images, batch ", t.batch,
                                                         ", rate ", rate, " (constant), up to ", t.epochs,
                                                         " epochs, 80/20 split (these are ewnet-train's defaults)."));
    }
    const ewnet::io::RunFolder folder = pipeline::hold_run_folder(t.out_dir, {d.dir, d.split_file, net.weights});
    d.batch = t.batch;
    d.network = pipeline::footprint(net.model, net.auxiliary_classifiers);
    const pipeline::Data data = pipeline::load_data(d, std::cout);
    t.title = net.weights.empty() ? "source training (from scratch)" : "training from " + net.weights;
    ewnet::train::RunReport report(std::cout);
    ewnet::transfer::train_network(net, *data.cache, data.split, pipeline::on_data(t, data, d.dir), &report);
    return 0;
  });
}
