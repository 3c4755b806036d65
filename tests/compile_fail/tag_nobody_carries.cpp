// Must not compile: no registered type carries the tag. The build checks the static_assert's text.
#include <tachyon/tachyon.hpp>
struct audit {};
struct Quote {
  int x;
};
int main() {
  tachyon::bus<tachyon::registry<Quote>> bus{{.workers = 0, .overflow = tachyon::overflow::fail}};
  auto s = bus.subscribe_tagged<audit>([](const auto&) {});
}
