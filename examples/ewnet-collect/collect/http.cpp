#include "collect/http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <thread>

#include <curl/curl.h>

#include "collect/strings.hpp"
#include "collect/url.hpp"

namespace ewnet::collect {
namespace {

struct Transfer {
  CURL* curl = nullptr;
  std::vector<std::uint8_t>* body = nullptr;
  std::size_t max_bytes = 0;
  const std::vector<std::string>* accept = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  bool over_limit = false;
  bool wrong_type = false;
  bool type_checked = false;
  bool blocked_address = false;
};

bool type_accepted(const std::string& type, const std::vector<std::string>& accept) {
  if (accept.empty()) return true;
  for (const std::string& a : accept)
    if (type.rfind(a, 0) == 0) return true;
  return false;
}

std::string media_type(const char* header) {
  if (!header) return "";
  std::string t = lower(header);
  const std::size_t semi = t.find(';');
  if (semi != std::string::npos) t.erase(semi);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  return t;
}

std::size_t on_body(char* data, std::size_t size, std::size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t n = size * nmemb;
  if (!t->type_checked) {
    t->type_checked = true;
    long status = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
    char* ct = nullptr;
    curl_easy_getinfo(t->curl, CURLINFO_CONTENT_TYPE, &ct);
    // Only a successful body is judged by its type; an error page is expected to be HTML.
    if (status >= 200 && status < 300 && !type_accepted(media_type(ct), *t->accept)) {
      t->wrong_type = true;
      return 0;
    }
  }
  if (t->body->size() + n > t->max_bytes) {
    t->over_limit = true;
    return 0;  // aborts the transfer: the size limit holds even without a Content-Length
  }
  t->body->insert(t->body->end(), data, data + n);
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return (t->cancel && t->cancel->load()) ? 1 : 0;
}

bool is_loopback(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
  }
  return false;
}

curl_socket_t open_loopback_only(void* user, curlsocktype, curl_sockaddr* addr) {
  auto* t = static_cast<Transfer*>(user);
  if (!is_loopback(&addr->addr)) {
    t->blocked_address = true;
    return CURL_SOCKET_BAD;
  }
  return socket(addr->family, addr->socktype, addr->protocol);
}

/// One GET of `url` into `t`: no redirects (get() follows them, robots-checked), http and https
/// only, the time and size limits, the body and progress callbacks, loopback only when asked.
void set_transfer_options(CURL* curl, const std::string& url, const FetchOptions& opt, Transfer& t, char* errbuf) {
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_USERAGENT, opt.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(opt.timeout_s * 1000));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout_s * 1000));
  curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(t.max_bytes));
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  if (opt.loopback_only) {
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, open_loopback_only);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &t);
  }
}

/// The status, media type, Retry-After and redirect target of a finished transfer.
void read_response_info(CURL* curl, Response& r, double* retry_after_s) {
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  char* ct = nullptr;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
  r.content_type = media_type(ct);
  curl_off_t retry_after = 0;
  curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after);
  *retry_after_s = static_cast<double>(retry_after);
  if (r.status >= 300 && r.status < 400) {
    char* location = nullptr;
    curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &location);
    if (location) r.location = location;
  }
}

/// The outcome and its error text, from libcurl's result and what the callbacks saw.
void set_outcome(Response& r, CURLcode rc, const Transfer& t, const char* errbuf) {
  if (rc == CURLE_OK) {
    r.outcome = (r.status >= 200 && r.status < 300) ? Response::Outcome::ok : Response::Outcome::http_error;
    if (!r.ok() && r.error.empty()) r.error = "HTTP status " + std::to_string(r.status);
  } else if (t.wrong_type) {
    r.outcome = Response::Outcome::wrong_type;
    r.error = "Content-Type \"" + r.content_type + "\" is not accepted";
  } else if (t.over_limit || rc == CURLE_FILESIZE_EXCEEDED) {
    r.outcome = Response::Outcome::too_large;
    r.error = "larger than " + std::to_string(t.max_bytes) + " bytes";
  } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
    r.outcome = Response::Outcome::cancelled;
    r.error = "interrupted";
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    r.outcome = Response::Outcome::timeout;
    r.error = std::string("timed out: ") + (errbuf[0] ? errbuf : curl_easy_strerror(rc));
  } else if (t.blocked_address) {
    r.outcome = Response::Outcome::bad_url;
    r.error = "address outside the loopback range refused (loopback-only mode)";
  } else if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT) {
    r.outcome = Response::Outcome::bad_url;
    r.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  } else {
    r.outcome = Response::Outcome::network;
    r.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  }
}

std::once_flag curl_init_once;

}  // namespace

bool Response::transient() const {
  switch (outcome) {
    case Outcome::timeout:
    case Outcome::network:
    case Outcome::cancelled:
      return true;
    case Outcome::http_error:
      return status == 429 || status >= 500;
    default:
      return false;
  }
}

const char* outcome_name(Response::Outcome o) {
  switch (o) {
    case Response::Outcome::ok: return "ok";
    case Response::Outcome::http_error: return "http-error";
    case Response::Outcome::too_large: return "too-large";
    case Response::Outcome::wrong_type: return "wrong-type";
    case Response::Outcome::timeout: return "timeout";
    case Response::Outcome::network: return "network-error";
    case Response::Outcome::disallowed: return "robots-disallowed";
    case Response::Outcome::bad_url: return "bad-url";
    case Response::Outcome::cancelled: return "cancelled";
  }
  return "?";
}

PoliteFetcher::PoliteFetcher(FetchOptions options) : opt_(std::move(options)) {
  std::call_once(curl_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

PoliteFetcher::~PoliteFetcher() = default;

void PoliteFetcher::log(const std::string& msg) const {
  if (opt_.log) opt_.log(msg);
}

bool PoliteFetcher::sleep_for(double seconds) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  // Sleeps in short steps so that an interrupt is noticed within 50 ms.
  while (Clock::now() < until) {
    if (opt_.cancel && opt_.cancel->load()) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
  }
  return !(opt_.cancel && opt_.cancel->load());
}

bool PoliteFetcher::wait_turn(const std::string& host) {
  Clock::time_point slot;
  {
    // Reserving the slot under the lock spaces concurrent requests to one host: each caller takes
    // the next free start time and moves it on by the host's delay.
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    auto it = next_slot_.find(host);
    slot = (it == next_slot_.end() || it->second < now) ? now : it->second;
    const auto d = host_delay_.find(host);
    const double delay = std::max(opt_.min_delay_s, d == host_delay_.end() ? 0.0 : d->second);
    next_slot_[host] = slot + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay));
  }
  return sleep_for(std::chrono::duration<double>(slot - Clock::now()).count());
}

void PoliteFetcher::push_back_host(const std::string& host, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto t = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  auto& slot = next_slot_[host];
  if (slot < t) slot = t;
}

Response PoliteFetcher::attempt(const std::string& url, std::size_t max_bytes, const std::vector<std::string>& accept,
                                double* retry_after_s) {
  Response r;
  r.url = url;
  CURL* curl = curl_easy_init();
  if (!curl) {
    r.outcome = Response::Outcome::network;
    r.error = "cannot create a libcurl handle";
    return r;
  }
  Transfer t;
  t.curl = curl;
  t.body = &r.body;
  t.max_bytes = max_bytes;
  t.accept = &accept;
  t.cancel = opt_.cancel;
  char errbuf[CURL_ERROR_SIZE] = {0};
  set_transfer_options(curl, url, opt_, t, errbuf);
  const CURLcode rc = curl_easy_perform(curl);
  read_response_info(curl, r, retry_after_s);
  set_outcome(r, rc, t, errbuf);
  curl_easy_cleanup(curl);
  if (!r.ok()) r.body.clear();
  return r;
}

RobotsRules PoliteFetcher::robots_for(const std::string& url) {
  Url u;
  if (!parse_url(url, u)) return RobotsRules::disallow_all();
  std::shared_ptr<RobotsEntry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& e = robots_[u.origin()];
    if (!e) e = std::make_shared<RobotsEntry>();
    entry = e;
  }
  std::call_once(entry->once, [&] {
    const std::string robots_url = u.origin() + "/robots.txt";
    const Response r = get_no_robots(robots_url, 512 * 1024, {}, false);
    // RFC 9309 section 2.3.1: a 4xx means there are no rules; a 5xx or an unreachable server means
    // the crawler must assume everything is disallowed.
    if (r.ok()) {
      entry->rules = RobotsRules::parse(std::string(r.body.begin(), r.body.end()), kProductToken);
    } else if (r.outcome == Response::Outcome::http_error && r.status >= 400 && r.status < 500) {
      entry->rules = RobotsRules::allow_all();
    } else if (r.outcome == Response::Outcome::too_large) {
      entry->rules = RobotsRules::allow_all();
    } else {
      entry->rules = RobotsRules::disallow_all();
      log(robots_url + ": unreachable (" + r.error + "), treating the whole site as disallowed");
    }
    if (entry->rules.crawl_delay() > 0) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        double& d = host_delay_[u.host];
        d = std::max(d, entry->rules.crawl_delay());
      }
      // The slot after robots.txt was reserved with the shorter delay; move it out.
      push_back_host(u.host, entry->rules.crawl_delay());
    }
  });
  return entry->rules;
}

Response PoliteFetcher::get(const std::string& url, std::size_t max_bytes, const std::vector<std::string>& accept) {
  return get_no_robots(url, max_bytes, accept, true);
}

Response PoliteFetcher::get_no_robots(const std::string& start_url, std::size_t max_bytes,
                                      const std::vector<std::string>& accept, bool check_robots) {
  std::string url = start_url;
  int attempts = 0;
  for (int hop = 0; hop <= opt_.max_redirects; ++hop) {
    Url u;
    if (!parse_url(url, u)) {
      Response r;
      r.url = url;
      r.outcome = Response::Outcome::bad_url;
      r.error = "not an http or https address";
      return r;
    }
    if (check_robots && !robots_for(url).allowed(u.path)) {
      Response r;
      r.url = url;
      r.outcome = Response::Outcome::disallowed;
      r.error = "disallowed by " + u.origin() + "/robots.txt";
      return r;
    }
    Response r;
    for (int retry = 0;; ++retry) {
      if (!wait_turn(u.host)) {
        r = Response();
        r.url = url;
        r.outcome = Response::Outcome::cancelled;
        r.error = "interrupted";
        return r;
      }
      double retry_after = 0;
      r = attempt(url, max_bytes, accept, &retry_after);
      r.attempts = ++attempts;
      const bool retryable =
          (r.outcome == Response::Outcome::http_error && (r.status == 429 || r.status >= 500)) ||
          (r.outcome == Response::Outcome::network);
      if (!retryable || retry >= opt_.max_retries) break;
      double wait = retry_after > 0 ? retry_after : opt_.backoff_base_s * std::pow(2.0, retry);
      if (retry_after > opt_.max_backoff_s) {
        r.error += " (server asks to wait " + std::to_string(static_cast<long>(retry_after)) + " s; giving up)";
        push_back_host(u.host, opt_.max_backoff_s);
        return r;
      }
      wait = std::min(wait, opt_.max_backoff_s);
      log(url + ": " + r.error + ", retrying in " + std::to_string(wait) + " s");
      // The whole host backs off, not just this address: a 429 or 503 is about the server's load.
      push_back_host(u.host, wait);
    }
    if (r.outcome == Response::Outcome::http_error && r.status >= 300 && r.status < 400 && !r.location.empty()) {
      url = r.location;
      continue;
    }
    return r;
  }
  Response r;
  r.url = url;
  r.outcome = Response::Outcome::network;
  r.error = "more than " + std::to_string(opt_.max_redirects) + " redirects";
  return r;
}

}  // namespace ewnet::collect
