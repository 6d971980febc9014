// A small HTTP/1.1 server for the ewnet-collect tests: bound to 127.0.0.1 on an ephemeral port,
// one thread per connection, canned responses per path, and a log of every request with the
// steady-clock time it arrived, so the tests can measure what the crawler did.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ewnet_test {

class TestServer {
 public:
  using Clock = std::chrono::steady_clock;

  struct Route {
    int status = 200;
    std::string content_type = "text/plain";
    std::string body;
    std::string extra_headers;    // "Name: value\r\n" lines
    double delay_s = 0.0;         // wait this long before answering (a slow server)
    long long declared_length = -1;  // Content-Length to claim instead of the body's size
    int fail_first = 0;           // answer the first N requests with fail_status instead
    int fail_status = 429;
    std::string fail_headers;
  };

  struct Request {
    std::string target;      // path and query as sent
    std::string user_agent;
    int status = 0;          // what the server answered
    Clock::time_point at;
  };

  TestServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("test server: socket() failed");
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 64) != 0)
      throw std::runtime_error("test server: cannot listen on 127.0.0.1");
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~TestServer() {
    stop_ = true;
    accept_thread_.join();
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      workers.swap(workers_);
    }
    for (auto& t : workers) t.join();
    ::close(fd_);
  }

  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void route(const std::string& target, Route r) {
    std::lock_guard<std::mutex> lock(mu_);
    routes_[target] = std::move(r);
  }

  std::vector<Request> log() const {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

  void clear_log() {
    std::lock_guard<std::mutex> lock(mu_);
    log_.clear();
  }

  int count(const std::string& target) const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& r : log_) n += r.target == target;
    return n;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([this, c] { serve(c); });
    }
  }

  // Reads until the end of the request headers; GET requests carry no body.
  static bool read_head(int c, std::string& head, const std::atomic<bool>& stop) {
    char buf[4096];
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (stop || Clock::now() > deadline || head.size() > 65536) return false;
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return false;
      head.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  static void send_all(int c, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(c, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }

  static const char* reason(int status) {
    switch (status) {
      case 200: return "OK";
      case 301: return "Moved Permanently";
      case 404: return "Not Found";
      case 429: return "Too Many Requests";
      case 500: return "Internal Server Error";
      case 503: return "Service Unavailable";
      default: return "Status";
    }
  }

  void serve(int c) {
    std::string head;
    if (!read_head(c, head, stop_)) {
      ::close(c);
      return;
    }
    const auto at = Clock::now();
    const std::size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    Request req;
    req.at = at;
    req.target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string ua_key = "\r\nUser-Agent: ";
    const std::size_t ua = head.find(ua_key);
    if (ua != std::string::npos) req.user_agent = head.substr(ua + ua_key.size(), head.find("\r\n", ua + 2) - ua - ua_key.size());

    Route r;
    bool found = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = routes_.find(req.target);
      if (it != routes_.end()) {
        found = true;
        Route& stored = it->second;
        r = stored;
        if (stored.fail_first > 0) {
          --stored.fail_first;
          r.status = r.fail_status;
          r.body = "slow down";
          r.content_type = "text/plain";
          r.extra_headers = r.fail_headers;
          r.delay_s = 0;
          r.declared_length = -1;
        }
      }
      req.status = found ? r.status : 404;
      log_.push_back(req);
    }
    if (!found) {
      r = Route();
      r.status = 404;
      r.body = "not found";
    }
    const auto until = at + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(r.delay_s));
    while (Clock::now() < until && !stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const long long length = r.declared_length >= 0 ? r.declared_length : static_cast<long long>(r.body.size());
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
    out += "Content-Type: " + r.content_type + "\r\n";
    out += "Content-Length: " + std::to_string(length) + "\r\n";
    out += "Connection: close\r\n" + r.extra_headers + "\r\n";
    out += r.body;
    send_all(c, out);
    ::shutdown(c, SHUT_WR);
    // Drains until the client closes, so the response is not cut off by a reset.
    char buf[512];
    for (int i = 0; i < 40 && !stop_; ++i) {
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0 && ::recv(c, buf, sizeof buf, 0) <= 0) break;
    }
    ::close(c);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;
  std::map<std::string, Route> routes_;
  std::vector<Request> log_;
};

}  // namespace ewnet_test
