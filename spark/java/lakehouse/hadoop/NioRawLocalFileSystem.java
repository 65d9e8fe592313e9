package lakehouse.hadoop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system without a process per call where the JVM can do the work itself.
 *
 * <p>Without Hadoop's native library, which pyspark does not ship, {@link RawLocalFileSystem} starts a {@code chmod}
 * for every permission it sets (each file and checksum file written, each directory made) and a {@code readlink}
 * for every link status it reads (each rename through {@code FileContext}: Delta commits, streaming checkpoints).
 * Here both go through {@code java.nio}. A sticky bit, which {@code java.nio} cannot set, still goes to the parent.
 */
public class NioRawLocalFileSystem extends RawLocalFileSystem {
  private static final short STICKY = 01000;
  // PosixFilePermission for each mode bit, lowest first: others x, w, r, then group, then owner
  private static final PosixFilePermission[] MODE_BITS = {
    PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
    PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
    PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ,
  };

  /** The POSIX permissions of a Hadoop permission's nine mode bits. */
  static Set<PosixFilePermission> posixPermissions(FsPermission permission) {
    short mode = permission.toShort();
    Set<PosixFilePermission> permissions = EnumSet.noneOf(PosixFilePermission.class);
    for (int bit = 0; bit < MODE_BITS.length; bit++) {
      if ((mode & (1 << bit)) != 0) {
        permissions.add(MODE_BITS[bit]);
      }
    }
    return permissions;
  }

  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    if ((permission.toShort() & STICKY) != 0) {
      super.setPermission(p, permission);
      return;
    }
    Files.setPosixFilePermissions(pathToFile(p).toPath(), posixPermissions(permission));
  }

  @Override
  public FileStatus getFileLinkStatus(Path f) throws IOException {
    if (Files.isSymbolicLink(pathToFile(f).toPath())) {
      return super.getFileLinkStatus(f);
    }
    return getFileStatus(f);
  }
}
