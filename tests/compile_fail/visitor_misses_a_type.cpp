// Must not compile: subscribe_all's visitor cannot take Order. The build checks the
// static_assert's text; the compiler's "required from" line names the type.
#include <tachyon/tachyon.hpp>
struct Quote {
  int x;
};
struct Order {
  int y;
};
int main() {
  tachyon::bus<tachyon::registry<Quote, Order>> bus{
      {.workers = 0, .overflow = tachyon::overflow::fail}};
  auto s = bus.subscribe_all([](const Quote&, const tachyon::meta&) {});
}
