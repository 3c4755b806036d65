// Must not compile: conflate_by on a member whose type std::hash does not know. The build
// checks the static_assert's text.
#include <tachyon/tachyon.hpp>
struct Point {
  int x, y;
  bool operator==(const Point&) const = default;
};
struct Move {
  Point at;
  int v;
};
using Events = tachyon::registry<
    tachyon::event<Move, tachyon::priority::normal, tachyon::conflate_by<&Move::at>>>;
int main() {
  tachyon::bus<Events> bus{{.workers = 0}};
  return 0;
}
