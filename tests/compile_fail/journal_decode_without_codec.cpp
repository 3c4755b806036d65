// Must not compile: reading a journal record as a type that cannot be journaled.
#include <string>

#include <tachyon/journal.hpp>
struct Comment {
  std::string text;
};
int main() {
  tachyon::journal_record r;
  (void)r.decode<Comment>();
  return 0;
}
