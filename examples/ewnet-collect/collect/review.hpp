// Cleaning by hand: the contact sheet to look at, and the reject list that moves images aside.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace ewnet::collect {

struct SheetOptions {
  std::string out_dir;
  int thumb_size = 160;  // longest side of a thumbnail, pixels
  std::function<void(const std::string&)> log;
};

/// Writes ROOT/_sheet/index.html and one page per class, ROOT/_sheet/<class>.html, with a thumbnail
/// (ROOT/_sheet/thumbs/...) and the file name of every kept image, plus the images held for review.
/// Ticking images on a page fills a box with their names, ready to paste into a reject list.
/// Returns the path of index.html. Throws InputError when ROOT has no manifest.
std::string write_contact_sheet(const SheetOptions& opt);

struct RejectReport {
  std::vector<std::string> moved;      // relative paths moved into _rejected/
  std::vector<std::string> not_found;  // names in the list that match no kept image
  std::vector<std::string> ambiguous;  // bare names that match images in several classes
};

/// Applies a reject list: one name per line, either "<class>/<file>" or a bare file name; blank
/// lines and '#' comments are ignored. Each match is moved to ROOT/_rejected/<class>/, removed from
/// manifest.csv and added to ROOT/_rejected/rejected.csv, so a later fetch neither keeps it again
/// nor downloads its address again. Nothing is deleted. Applying the same list twice is harmless.
RejectReport apply_reject_list(const std::string& out_dir, const std::vector<std::string>& names);

/// Reads a reject list file into names; throws InputError when it cannot be read.
std::vector<std::string> read_reject_list(const std::string& path);

}  // namespace ewnet::collect
