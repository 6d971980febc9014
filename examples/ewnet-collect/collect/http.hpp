// A polite HTTP client on libcurl: it waits between requests to one host, honours robots.txt,
// retries 429 and 5xx with exponential back-off (or the server's Retry-After), enforces timeouts
// and a size limit while the body streams in, and names itself in the User-Agent.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "collect/robots.hpp"

namespace ewnet::collect {

inline constexpr const char* kProductToken = "ewnet-collect";
inline constexpr const char* kUserAgent = "ewnet-collect/0.1 (+docs/collecting-data.md)";

struct FetchOptions {
  std::string user_agent = kUserAgent;
  double min_delay_s = 1.0;       // between the starts of two requests to one host
  double timeout_s = 30.0;        // whole transfer; a slower response is abandoned, not retried
  double connect_timeout_s = 10.0;
  int max_retries = 4;            // extra attempts after a 429, a 5xx or a dropped connection
  double backoff_base_s = 1.0;    // wait before retry k (0-based) is base * 2^k ...
  double max_backoff_s = 60.0;    // ... at most this; a longer Retry-After gives up on the address
  int max_redirects = 5;
  bool loopback_only = false;     // refuse to connect anywhere but 127.0.0.0/8 and ::1 (tests)
  const std::atomic<bool>* cancel = nullptr;          // set to abandon transfers and waits
  std::function<void(const std::string&)> log;        // progress messages, may be empty
};

struct Response {
  enum class Outcome {
    ok,            // 2xx, body complete
    http_error,    // a final status other than 2xx (after retries for 429 and 5xx)
    too_large,     // declared or streamed size over the limit
    wrong_type,    // Content-Type not among the accepted ones
    timeout,
    network,       // could not connect, connection dropped, too many redirects
    disallowed,    // robots.txt forbids the address
    bad_url,
    cancelled,
  };
  Outcome outcome = Outcome::network;
  long status = 0;
  std::string content_type;  // lower case, without parameters
  std::vector<std::uint8_t> body;
  std::string url;           // the address finally fetched (after redirects)
  std::string location;      // the redirect target of a 3xx
  std::string error;         // what went wrong, for the log
  int attempts = 0;

  bool ok() const { return outcome == Outcome::ok; }
  /// Outcomes worth trying again in a later run (the server or the network may recover).
  bool transient() const;
};

const char* outcome_name(Response::Outcome o);

class PoliteFetcher {
 public:
  explicit PoliteFetcher(FetchOptions options);
  ~PoliteFetcher();
  PoliteFetcher(const PoliteFetcher&) = delete;
  PoliteFetcher& operator=(const PoliteFetcher&) = delete;

  /// GETs `url`. `max_bytes` bounds the body; `accept` lists Content-Type prefixes that may be
  /// received ("image/"), empty for any. Safe to call from several threads: requests to one host
  /// are spaced by the delay however many threads ask.
  Response get(const std::string& url, std::size_t max_bytes, const std::vector<std::string>& accept = {});

  /// The rules of the site serving `url` (fetched once per origin and cached).
  RobotsRules robots_for(const std::string& url);

 private:
  using Clock = std::chrono::steady_clock;
  struct RobotsEntry {
    std::once_flag once;
    RobotsRules rules;
  };
  Response attempt(const std::string& url, std::size_t max_bytes, const std::vector<std::string>& accept,
                   double* retry_after_s);
  Response get_no_robots(const std::string& url, std::size_t max_bytes, const std::vector<std::string>& accept,
                         bool check_robots);
  bool wait_turn(const std::string& host);
  void push_back_host(const std::string& host, double seconds);
  bool sleep_for(double seconds);
  void log(const std::string& msg) const;

  FetchOptions opt_;
  std::mutex mu_;
  std::map<std::string, Clock::time_point> next_slot_;  // per host: earliest start of the next request
  std::map<std::string, double> host_delay_;            // per host: max(min_delay, Crawl-delay)
  std::map<std::string, std::shared_ptr<RobotsEntry>> robots_;  // per origin
};

}  // namespace ewnet::collect
