// Must not compile: Order is not in the registry. The build checks the static_assert's text.
#include <tachyon/tachyon.hpp>
struct Quote {
  int x;
};
struct Order {
  int y;
};
int main() {
  tachyon::bus<tachyon::registry<Quote>> bus{{.workers = 0, .overflow = tachyon::overflow::fail}};
  return static_cast<int>(bus.subscribers<Order>());
}
