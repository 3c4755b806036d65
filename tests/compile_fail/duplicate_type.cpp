// Must not compile: a type listed twice. The build checks the static_assert's text.
#include <tachyon/tachyon.hpp>
struct Quote {
  int x;
};
int main() { return static_cast<int>(tachyon::registry<Quote, Quote>::size); }
