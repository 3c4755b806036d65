// Must not compile: Plain has no tachyon::codec, so it cannot be decoded. decode is constrained
// (tachyon::serializable), so the compiler's complaint is a constraint's, naming tachyon::codec.
// compile_fail_expects: tachyon::codec<T>::name.* is invalid|template .tachyon::codec<
#include <cstddef>
#include <vector>

#include <tachyon/codec.hpp>
struct Plain {
  int x;
};
int main() {
  const std::vector<std::byte> payload(sizeof(Plain));
  (void)tachyon::decode<Plain>(payload, 1);
}
